package main

import (
	"os"
	"strings"
	"testing"
)

// The testdata are `go test -json ./...` of a module with a package whose
// TestMain writes a testredis line after its tests, a test that logs, one
// that skips and one whose subtest fails (fail.json only), and a package
// without tests; build.json has a test file that does not compile.
func TestSummarize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file       string
		wantFailed bool
		want       []string // in this order
		wantNot    []string
	}{
		{file: "pass.json", want: []string{"?   \tx/b\t[no test files]", "testredis: 3 real-Redis tests skipped: x", "ok  \tx/a\t"},
			wantNot: []string{"hidden log", "=== RUN", "--- SKIP", "PASS\n"}},
		{file: "fail.json", wantFailed: true,
			want:    []string{"--- FAIL: TestY/sub", "a_test.go:5: shown", "a_test.go:5: boom", "--- FAIL: TestY ", "testredis: 3 real-Redis tests skipped", "FAIL\tx/a\t"},
			wantNot: []string{"hidden log", "=== RUN"}},
		{file: "build.json", wantFailed: true, want: []string{"undefined: undefined", "FAIL\tx/a [build failed]"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			f, err := os.Open("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var out strings.Builder
			failed, err := summarize(f, &out)
			if err != nil || failed != tt.wantFailed {
				t.Errorf("summarize = %v, %v; want failed %v", failed, err, tt.wantFailed)
			}
			got := out.String()
			at := 0
			for _, w := range tt.want {
				i := strings.Index(got[at:], w)
				if i < 0 {
					t.Fatalf("the summary lacks %q after byte %d:\n%s", w, at, got)
				}
				at += i + len(w)
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("the summary shows %q:\n%s", w, got)
				}
			}
		})
	}
}
