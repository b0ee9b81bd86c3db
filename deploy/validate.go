package deploy

import (
	"fmt"
	"strings"
	"text/template"

	"github.com/shuanghuo/shuanghuo/internal/names"
)

const nameRule = "must be lower-case letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters"

// Validate checks the app's configuration. The error is a *ValidationError
// listing every problem found.
func (c *AppConfig) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(c)
	if c.Project != "" && !names.Valid(c.Project) {
		v.Add("project", nameRule)
	}
	if c.Name != "" && !names.Valid(c.Name) {
		v.Add("name", nameRule)
	}
	switch c.Kind {
	case KindTarball:
		if len(c.Command) == 0 {
			v.Add("command", "is required for a tarball: the start command, relative to the unpacked directory")
		}
	case KindJar, KindExecutable:
		if len(c.Command) > 0 {
			v.Add("command", fmt.Sprintf("is only for a tarball; a %s runs its artifact", c.Kind))
		}
	}
	if len(c.JVMOptions) > 0 && c.Kind != KindJar {
		v.Add("jvm_options", "are only for a jar")
	}
	if c.Java != "" && c.Kind != KindJar {
		v.Add("java", "is only for a jar")
	}
	checkTemplates := func(path string, texts []string) {
		for i, t := range texts {
			if _, err := template.New("").Option("missingkey=error").Parse(t); err != nil {
				v.Add(fmt.Sprintf("%s[%d]", path, i), "is not a valid template: "+err.Error())
			}
		}
	}
	checkTemplates("command", c.Command)
	checkTemplates("jvm_options", c.JVMOptions)
	checkTemplates("args", c.Args)
	for k, t := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.Add("env", fmt.Sprintf("name %q is not a variable name", k))
		}
		if _, err := template.New("").Parse(t); err != nil {
			v.Add("env."+k, "is not a valid template: "+err.Error())
		}
	}
	paths := map[string]bool{}
	for i, f := range c.ConfigFiles {
		p := fmt.Sprintf("config_files[%d]", i)
		if f.Path != "" && !safeRelPath(f.Path) {
			v.Add(p+".path", "must be a relative path inside the instance's directory")
		}
		if paths[f.Path] {
			v.Add(p+".path", "is listed twice")
		}
		paths[f.Path] = true
		if _, err := template.New("").Parse(f.Template); err != nil {
			v.Add(p+".template", "is not a valid template: "+err.Error())
		}
	}
	names := map[string]bool{}
	for i, p := range c.Ports {
		if names[p.Name] {
			v.Add(fmt.Sprintf("ports[%d].name", i), "is listed twice")
		}
		names[p.Name] = true
	}
	h := c.Health
	if h.Type != "" && len(c.Ports) == 0 {
		v.Add("health.type", "needs a port: the app lists none")
	}
	if h.Port != "" && !names[h.Port] {
		v.Add("health.port", fmt.Sprintf("names no port of the app, got %q", h.Port))
	}
	if h.Path != "" && h.Type != "http" {
		v.Add("health.path", "is only for an http health check")
	}
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		v.Add("health.path", "must start with /")
	}
	if r := c.Restart; r.BackoffMax != 0 && r.BackoffMax < r.BackoffMin {
		v.Add("restart.backoff_max", fmt.Sprintf("must be at least restart.backoff_min (%v), got %v", r.BackoffMin, r.BackoffMax))
	}
	return v.Err()
}

// Validate checks the node's configuration. The error is a *ValidationError
// listing every problem found.
func (c *NodeConfig) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(c)
	if c.Name != "" && !names.Valid(c.Name) {
		v.Add("name", nameRule)
	}
	switch c.Driver {
	case "ssh":
		if c.SSH == nil {
			v.Add("ssh", "is required for the ssh driver")
		} else if c.SSH.KeyFile == "" && c.SSH.Password == "" {
			v.Add("ssh.key_file", "or ssh.password is required")
		}
	case "local":
		if c.Dir == "" {
			v.Add("dir", "is required for the local driver")
		}
		if c.SSH != nil {
			v.Add("ssh", "is only for the ssh driver")
		}
	}
	return v.Err()
}

// Validate checks the version's description.
func (c *VersionConfig) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(c)
	if c.Name != "" && !names.ValidVersion(c.Name) {
		v.Add("name", "must be letters, digits, '.', '-', '_' and '+', not starting with '.', at most 64 characters")
	}
	if c.Digest != "" {
		if _, err := ParseDigest(c.Digest); err != nil {
			v.Add("digest", "must be sha256:<64 hex digits>")
		}
	}
	return v.Err()
}

// Validate checks the strategy.
func (s *Strategy) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(s)
	if s.Type == AllAtOnce && s.BatchSize > 0 {
		v.Add("batch_size", "is only for a rolling deployment, but type is all-at-once")
	}
	return v.Err()
}
