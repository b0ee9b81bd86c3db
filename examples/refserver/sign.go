package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shuanghuo/shuanghuo/gateway"
)

// headerFlags collects repeated -H "Name: value" flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// runSign sends one request signed as a gateway consumer (gateway.Signer), as a hospital's
// client would, and prints the answer: a way to try a gateway without writing a client.
func runSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("refserver sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", "", "the consumer's `AppKey`")
	secret := fs.String("secret", "", "the consumer's `AppSecret`")
	method := fs.String("X", "", "request `method`; default POST with -d, else GET")
	data := fs.String("d", "", "request `body`; sent as application/json unless -H sets Content-Type")
	var headers headerFlags
	fs.Var(&headers, "H", "extra `header` \"Name: value\" (repeatable)")
	printOnly := fs.Bool("print", false, "print the Authorization header instead of sending (valid once, for 5 minutes)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: refserver sign -key APPKEY -secret APPSECRET [-X METHOD] [-d BODY] [-H 'Name: value'] URL\n\nSends one request signed for the gateway (SH-HMAC-SHA256, see package gateway) and prints the\nanswer.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *key == "" || *secret == "" {
		fs.Usage()
		return errors.New("sign: want -key, -secret and one URL")
	}
	if *method == "" {
		*method = http.MethodGet
		if *data != "" {
			*method = http.MethodPost
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var body io.Reader
	if *data != "" {
		body = strings.NewReader(*data)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(*method), fs.Arg(0), body)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if *data != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("sign: header %q: want \"Name: value\"", h)
		}
		req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if err := (&gateway.Signer{AppKey: *key, Secret: *secret}).Sign(req); err != nil {
		return err
	}
	if *printOnly {
		fmt.Fprintf(stdout, "Authorization: %s\n", req.Header.Get("Authorization"))
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	defer resp.Body.Close()
	fmt.Fprintf(stdout, "%s %s\n", resp.Proto, resp.Status)
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		fmt.Fprintf(stdout, "X-Request-Id: %s\n", id)
	}
	fmt.Fprintln(stdout)
	_, err = io.Copy(stdout, resp.Body)
	return err
}
