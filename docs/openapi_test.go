package docs

import (
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIIsValid: openapi.yaml loads as OpenAPI 3.1 and validates
// (every reference resolves, every schema is well formed). cmd/webhook's
// tests check the service's real traffic against it.
func TestOpenAPIIsValid(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi.yaml is OpenAPI %s; want 3.1", doc.OpenAPI)
	}
}
