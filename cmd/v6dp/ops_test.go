package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLogFormat(t *testing.T) {
	var buf bytes.Buffer
	h, err := logHandler(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	slog.New(h).Info("repaired", "what", "proxy entry", "addr", "2001:db8::c009")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("json log line %q: %v", buf.String(), err)
	}
	if line["msg"] != "repaired" || line["what"] != "proxy entry" {
		t.Errorf("json log line: got %v", line)
	}
	buf.Reset()
	if h, err = logHandler(&buf, "text", "debug"); err != nil {
		t.Fatal(err)
	}
	slog.New(h).Debug("port ipv6 off", "port", "eth0.100")
	if !strings.Contains(buf.String(), `msg="port ipv6 off" port=eth0.100`) {
		t.Errorf("text log line: got %q", buf.String())
	}
	for _, c := range []struct{ format, level, want string }{
		{"xml", "info", `log-format: "xml" is not one of text, json`},
		{"json", "loud", `log-level: "loud" is not one of debug, info, warn, error`},
	} {
		if _, err := logHandler(&buf, c.format, c.level); err == nil || err.Error() != c.want {
			t.Errorf("logHandler(%q, %q): got %v, want %q", c.format, c.level, err, c.want)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "1.2.3", "0123456789abcdef"
	var out, errs bytes.Buffer
	if err := run([]string{"version"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "v6dp 1.2.3 (commit 0123456789ab") || !strings.Contains(got, "go1.") {
		t.Errorf("v6dp version: got %q", got)
	}
	if err := run([]string{"version", "x"}, &out, &errs); err == nil || err.Error() != `version: unexpected argument "x"` {
		t.Errorf("v6dp version x: got %v", err)
	}
}
