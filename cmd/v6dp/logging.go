package main

import (
	"fmt"
	"io"
	"log/slog"
)

// logHandler makes the daemon's log handler: slog's text (key=value) or
// JSON (one object a line, for log shippers) format.
func logHandler(w io.Writer, format, level string) (slog.Handler, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	default:
		return nil, fmt.Errorf("log-format: %q is not one of text, json", format)
	}
}
