package helixclient

// StatusCode is the HTTP status the API answered, so that a caller can
// tell an answered error (nothing done) from one without an answer.
func (e *APIError) StatusCode() int { return e.HTTPStatus }
