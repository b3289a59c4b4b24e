// Package docs holds what the service serves about itself: the OpenAPI
// description of its routes (openapi.yaml, beside the prose pages of this
// folder), embedded so the binary serves the file that the tests check.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml: every route of the service, served at
// GET /openapi.yaml. cmd/webhook's end-to-end tests validate their real
// requests and replies against it.
//
//go:embed openapi.yaml
var OpenAPI []byte
