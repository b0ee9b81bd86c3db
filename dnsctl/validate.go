package dnsctl

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// structValidator is built once: the validator caches struct metadata and is safe
// for concurrent use. It holds no configuration, so sharing it between servers is
// not shared state in any sense a caller could observe.
var structValidator = sync.OnceValue(func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	validate.Register(v)
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		if name == "" {
			return f.Name
		}
		return name
	})
	return v
})

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// checkStruct runs the validate tags of v and appends one FieldError per failing
// field, with paths below prefix.
func checkStruct(fe *fieldErrors, prefix string, v any) {
	err := structValidator().Struct(v)
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		if err != nil {
			fe.add(prefix, "%v", err)
		}
		return
	}
	for _, e := range verrs {
		// Namespace starts with the Go type name of the root struct; paths are
		// relative to the validated value.
		_, path, _ := strings.Cut(e.Namespace(), ".")
		fe.add(joinPath(prefix, path), "%s", tagMessage(e))
	}
}

func joinPath(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

func tagMessage(e validator.FieldError) string {
	switch e.Tag() {
	case "required":
		return "is required"
	case "oneof":
		return "must be one of: " + e.Param()
	case "min":
		return "must be at least " + e.Param()
	case "max":
		return "must be at most " + e.Param()
	case "duration":
		return validate.Message(e)
	case "cidr":
		return "must be a network in CIDR notation"
	case "ip":
		return "must be an IP address"
	case "hostname_port":
		return "must be host:port"
	case "base64":
		return "must be base64"
	}
	return fmt.Sprintf("failed %q", e.Tag())
}
