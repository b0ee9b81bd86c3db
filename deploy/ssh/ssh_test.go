package ssh

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shuanghuo/shuanghuo/deploy"
)

const emptySum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestParseSum(t *testing.T) {
	for _, c := range []struct {
		name, out, want string
	}{
		{"sha256sum", abcSum + "  -\n", abcSum},
		{"OpenSSL 3", "SHA2-256(stdin)= " + abcSum + "\n", abcSum},
		{"OpenSSL 1.1", "(stdin)= " + abcSum + "\n", abcSum},
		{"SHA256 label", "SHA256(stdin)= " + abcSum + "\n", abcSum},
		{"openssl -r", abcSum + " *stdin\n", abcSum},
		{"bare", abcSum, abcSum},
		{"upper case", strings.ToUpper(abcSum) + "  -\n", abcSum},
		{"empty", "", ""},
		{"error message", "sh: openssl: not found\n", ""},
		{"too short", abcSum[:63] + "  -\n", ""},
		{"too long", abcSum + "0  -\n", ""},
		{"two sums", abcSum + "  -\n" + emptySum + "  -\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := parseSum(c.out)
			if got != c.want || ok != (c.want != "") {
				t.Errorf("parseSum(%q) = %q, %v; want %q, %v", c.out, got, ok, c.want, c.want != "")
			}
		})
	}
}

// probeOutput is what probeScript prints when hashTools print outs.
func probeOutput(outs ...string) string {
	var b strings.Builder
	for i, out := range outs {
		b.WriteString(probeMark + strconv.Itoa(i) + "\n" + out + "\n")
	}
	return b.String()
}

func TestPickHashTool(t *testing.T) {
	for _, c := range []struct {
		name string
		out  string
		want string // "": none
	}{
		{"all there", probeOutput("SHA2-256(stdin)= "+abcSum+"\n", abcSum+"  -\n", abcSum+"  -\n"), "openssl dgst -sha256"},
		{"no openssl", probeOutput("", abcSum+"  -\n", abcSum+"  -\n"), "sha256sum"},
		{"openssl hashing wrong", probeOutput("SHA2-256(stdin)= "+emptySum+"\n", abcSum+"  -\n", ""), "sha256sum"},
		{"busybox only", probeOutput("", "", abcSum+"  -\n"), "busybox sha256sum"},
		{"none", probeOutput("", "", ""), ""},
		{"no output", "", ""},
		{"sum outside a section", abcSum + "\n" + probeOutput("", "", ""), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := pickHashTool(c.out)
			if c.want == "" {
				if !errors.Is(err, deploy.ErrUnsupported) {
					t.Errorf("pickHashTool = %q, %v; want an error wrapping ErrUnsupported", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("pickHashTool = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// TestProbeScript runs the probe with this host's shell, with the tools of
// this host and with PATHs that lack or break some of them.
func TestProbeScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("no sha256sum:", err)
	}
	// bin makes a directory for PATH holding sha256sum when asked, and the
	// given scripts.
	bin := func(withSum bool, scripts map[string]string) string {
		dir := t.TempDir()
		if withSum {
			if err := os.Symlink(sha256sum, filepath.Join(dir, "sha256sum")); err != nil {
				t.Fatal(err)
			}
		}
		for name, script := range scripts {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, c := range []struct {
		name string
		path string // "": this host's
		want string // "": any; "-": none
	}{
		{"this host", "", ""},
		{"no openssl", bin(true, nil), "sha256sum"},
		{"openssl hashing wrong", bin(true, map[string]string{"openssl": "cat >/dev/null; echo 'SHA2-256(stdin)= " + emptySum + "'\n"}), "sha256sum"},
		{"openssl failing", bin(true, map[string]string{"openssl": "echo 'Invalid command' >&2; exit 1\n"}), "sha256sum"},
		{"no tool", bin(false, nil), "-"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), sh, "-c", probeScript)
			if c.path != "" {
				cmd.Env = append(os.Environ(), "PATH="+c.path)
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			got, err := pickHashTool(string(out))
			switch {
			case c.want == "-" && !errors.Is(err, deploy.ErrUnsupported):
				t.Errorf("pickHashTool = %q, %v; want an error wrapping ErrUnsupported; the probe printed:\n%s", got, err, out)
			case c.want != "-" && err != nil:
				t.Errorf("%v; the probe printed:\n%s", err, out)
			case c.want != "-" && c.want != "" && got != c.want:
				t.Errorf("pickHashTool = %q, want %q; the probe printed:\n%s", got, c.want, out)
			}
		})
	}
}
