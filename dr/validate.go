package dr

// Validate checks the configuration. The error is a *ValidationError listing
// every problem found.
func (c *GroupConfig) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(c)
	if c.A.Addr != "" && c.A.Addr == c.B.Addr {
		v.Add("b.addr", "must differ from a.addr: a DR group pairs two instances")
	} else if c.A.PeerAddr() != "" && c.A.PeerAddr() == c.B.PeerAddr() {
		v.Add("b.replication_addr", "must differ from a's: each instance replicates from the other")
	}
	for _, side := range []Side{SideA, SideB} {
		if t := c.Instance(side).TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
			v.Add(string(side)+".tls", "cert_file and key_file go together: set both or neither")
		}
	}
	return v.Err()
}
