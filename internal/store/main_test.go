package store

import (
	"testing"

	"github.com/banking-marketplace/webhook/internal/testredis"
)

// TestMain lets the real-Redis tests share one redis-server, started on
// first use where REDIS_URL is unset and stopped when the tests end.
func TestMain(m *testing.M) { testredis.Main(m) }
