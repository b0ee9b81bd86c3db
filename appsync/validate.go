package appsync

import (
	"sync"

	"github.com/go-playground/validator/v10"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// structValidator is built once: it caches struct metadata, is safe for
// concurrent use and holds no configuration of its own.
var structValidator = sync.OnceValue(func() *validator.Validate { return validate.New("json") })

// tagErrors adds to v the failures of s's struct tags.
func tagErrors(v *ValidationError, s any) {
	fields, err := validate.Fields(structValidator(), s)
	if err != nil {
		v.add("", err.Error())
	}
	for path, msg := range fields {
		v.add(path, msg)
	}
}
