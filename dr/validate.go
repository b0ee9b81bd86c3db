package dr

import (
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// tagErrors adds to v the failures of s's struct tags.
func tagErrors(v *ValidationError, s any) {
	for path, msg := range validate.Struct(s) {
		v.add(path, msg)
	}
}

// Validate checks the configuration. The error is a *ValidationError listing
// every problem found.
func (c *GroupConfig) Validate() error {
	v := &ValidationError{}
	tagErrors(v, c)
	if c.A.Addr != "" && c.A.Addr == c.B.Addr {
		v.add("b.addr", "must differ from a.addr: a DR group pairs two instances")
	} else if c.A.PeerAddr() != "" && c.A.PeerAddr() == c.B.PeerAddr() {
		v.add("b.replication_addr", "must differ from a's: each instance replicates from the other")
	}
	for _, side := range []Side{SideA, SideB} {
		if t := c.Instance(side).TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
			v.add(string(side)+".tls", "cert_file and key_file go together: set both or neither")
		}
	}
	return v.err()
}
