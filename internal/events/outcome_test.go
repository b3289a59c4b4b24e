package events

import "testing"

// TestKindsAreWrittenAsStored: delivery records store an outcome's kind by
// its name (Kind.String) and read it back with ParseKind, so the names are
// part of what Redis holds: a renamed kind keeps its stored word, or the
// records written before it would read back as no kind at all.
func TestKindsAreWrittenAsStored(t *testing.T) {
	t.Parallel()
	stored := map[Kind]string{
		Final:     "final",
		NotStored: "unsettled", // its name before "unsettled" meant the settle queue's subscriptions
		Transient: "transient",
		Busy:      "busy",
		Conflict:  "conflict",
	}
	for kind, word := range stored {
		if got := kind.String(); got != word {
			t.Errorf("Kind %d is written %q, records hold %q", kind, got, word)
		}
		if got := ParseKind(word); got != kind {
			t.Errorf("ParseKind(%q) = %v, want %v", word, got, kind)
		}
	}
	if got := ParseKind("no such kind"); got != 0 {
		t.Errorf("ParseKind of an unknown word = %v, want 0", got)
	}
}
