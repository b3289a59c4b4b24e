package replay

import (
	"errors"
	"fmt"
	"io"

	"github.com/banking-marketplace/webhook/internal/canonjson"
	"github.com/banking-marketplace/webhook/internal/events"
)

// dryRun decodes and validates every fixture, in order, and sends nothing.
// Placeholders are checked to name an earlier fixture and stand in as "1".
func dryRun(p *runPlan, cfg config, stdout io.Writer) error {
	rep := newReporter(cfg.format, p.total, stdout, nil)
	rep.dry = true
	for _, g := range p.groups {
		for _, f := range g.fixtures {
			res := result{file: f.path, verdict: verdictOK}
			res.problems = check(p, cfg, f)
			if len(res.problems) > 0 {
				res.verdict = verdictBad
			}
			rep.report(res)
		}
	}
	return rep.finish(nil)
}

// check lists everything wrong with one fixture: each bad field, a
// placeholder that names no earlier fixture, a missing extension, a bad
// expectation file.
func check(p *runPlan, cfg config, f fixture) []string {
	lookup := func(name string) (string, error) {
		if name == f.name() {
			return "", fmt.Errorf("placeholder {{accounts.%s}} names the fixture itself", name)
		}
		if _, ok := p.earlier(name, f.index); !ok {
			return "", fmt.Errorf("unresolved placeholder {{accounts.%s}}: no fixture %s.json comes before this one in the run", name, name)
		}
		return "1", nil
	}
	raw, err := readLimited(f.path)
	if err != nil {
		return []string{unwrapPathError(err).Error()}
	}
	body, err := substitute(raw, lookup)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	appdirect := isAppDirect(body)
	if appdirect {
		_, err = events.DecodeAppDirect(body)
	} else if _, err = events.Decode(body); err == nil {
		// The door refuses what it cannot fingerprint: names given twice.
		_, err = canonjson.Fingerprint(body)
	}
	var verr *events.ValidationError
	switch {
	case errors.As(err, &verr):
		for _, fe := range verr.Fields {
			problems = append(problems, fe.String())
		}
	case err != nil:
		problems = append(problems, err.Error())
	}
	if cfg.extension == "" && len(problems) == 0 && !appdirect {
		if _, err := extensionOf(body); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if _, err := readExpectation(f, lookup); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}
