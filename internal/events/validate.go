package events

import (
	"errors"
	"reflect"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"
)

// validate is the process's one validator: it caches struct metadata, so it
// is built once.
var validate = sync.OnceValue(func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	// ident: printable ASCII without spaces or braces, so that the value is
	// safe in Redis keys (braces are Redis Cluster hash tags) and log lines.
	_ = v.RegisterValidation("ident", func(fl validator.FieldLevel) bool {
		for _, r := range fl.Field().String() {
			if r <= ' ' || r > '~' || r == '{' || r == '}' {
				return false
			}
		}
		return true
	})
	return v
})

// validateStruct adds a FieldError to verr for every rule s breaks.
func validateStruct(s any, verr *ValidationError) {
	err := validate().Struct(s)
	var errs validator.ValidationErrors
	if !errors.As(err, &errs) {
		return
	}
	for _, fe := range errs {
		verr.add(jsonPath(fe.Namespace()), ruleProblem(fe))
	}
}

// jsonPath turns "SubscriptionEvent.event.payload.order" into
// "event.payload.order".
func jsonPath(namespace string) string {
	_, path, ok := strings.Cut(namespace, ".")
	if !ok {
		return namespace
	}
	return path
}

func ruleProblem(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "max":
		if fe.Kind() == reflect.Slice {
			return "must have at most " + fe.Param() + " entries"
		}
		return "must be at most " + fe.Param() + " characters"
	case "gte":
		return "must be " + fe.Param() + " or more"
	case "ident":
		return "must be printable ASCII without spaces or braces"
	}
	return "breaks the rule " + fe.Tag()
}
