package events

import "encoding/json"

// ErrorCode is the q2_marketplace ErrorCode of a failure reply.
type ErrorCode string

// The error codes of q2_marketplace.models.marketplace.ErrorCode.
const (
	UserAlreadyExists  ErrorCode = "USER_ALREADY_EXISTS"
	UserNotFound       ErrorCode = "USER_NOT_FOUND"
	AccountNotFound    ErrorCode = "ACCOUNT_NOT_FOUND"
	MaxUsersReached    ErrorCode = "MAX_USERS_REACHED"
	Unauthorized       ErrorCode = "UNAUTHORIZED"
	OperationCancelled ErrorCode = "OPERATION_CANCELLED"
	ConfigurationError ErrorCode = "CONFIGURATION_ERROR"
	InvalidResponse    ErrorCode = "INVALID_RESPONSE"
	Pending            ErrorCode = "PENDING"
	Forbidden          ErrorCode = "FORBIDDEN"
	BindingNotFound    ErrorCode = "BINDING_NOT_FOUND"
	TransportError     ErrorCode = "TRANSPORT_ERROR"
	UnknownError       ErrorCode = "UNKNOWN_ERROR"
	DoNotCancel        ErrorCode = "DO_NOT_CANCEL"
)

// ErrorCodes lists every code, in the order of the q2_marketplace enum.
var ErrorCodes = []ErrorCode{
	UserAlreadyExists, UserNotFound, AccountNotFound, MaxUsersReached,
	Unauthorized, OperationCancelled, ConfigurationError, InvalidResponse,
	Pending, Forbidden, BindingNotFound, TransportError, UnknownError, DoNotCancel,
}

// Reply is one of the two q2_marketplace reply documents:
//
//	{"success": true, "accountIdentifier": "<id>"}                       SubscriptionSuccess
//	{"success": false, "errorCode": "<ErrorCode>", "message": "<text>"}  SubscriptionFailure
type Reply struct {
	Success           bool
	AccountIdentifier string
	ErrorCode         ErrorCode
	Message           string
}

// Success is the SubscriptionSuccess document.
func Success(accountIdentifier string) Reply {
	return Reply{Success: true, AccountIdentifier: accountIdentifier}
}

// Failure is the SubscriptionFailure document.
func Failure(code ErrorCode, message string) Reply {
	return Reply{ErrorCode: code, Message: message}
}

type successDoc struct {
	Success           bool   `json:"success"`
	AccountIdentifier string `json:"accountIdentifier"`
}

type failureDoc struct {
	Success   bool      `json:"success"`
	ErrorCode ErrorCode `json:"errorCode"`
	Message   string    `json:"message"`
}

// MarshalJSON writes exactly the fields of the document r is.
func (r Reply) MarshalJSON() ([]byte, error) {
	if r.Success {
		return json.Marshal(successDoc{true, r.AccountIdentifier})
	}
	return json.Marshal(failureDoc{false, r.ErrorCode, r.Message})
}

// UnmarshalJSON reads either document.
func (r *Reply) UnmarshalJSON(b []byte) error {
	var doc struct {
		Success           bool      `json:"success"`
		AccountIdentifier string    `json:"accountIdentifier"`
		ErrorCode         ErrorCode `json:"errorCode"`
		Message           string    `json:"message"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	*r = Reply(doc)
	return nil
}
