package appsync

import (
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// tagErrors adds to v the failures of s's struct tags.
func tagErrors(v *ValidationError, s any) {
	for path, msg := range validate.Struct(s) {
		v.add(path, msg)
	}
}
