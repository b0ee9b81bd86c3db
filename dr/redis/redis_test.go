package redis

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/dr"
)

func TestParseInfo(t *testing.T) {
	m := parseInfo("# Replication\r\nrole:slave\r\nmaster_host:center-a-redis1\r\nmaster_port:6379\r\nmaster_link_status:up\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb2:keys=4,expires=1,avg_ttl=9\r\n")
	require.Equal(t, "slave", m["role"])
	require.Equal(t, int64(7), keys(m))
	require.True(t, replicates(m, dr.Instance{Addr: "127.0.0.1:1", ReplicationAddr: "center-a-redis1:6379"}))
	require.False(t, replicates(m, dr.Instance{Addr: "center-a-redis1:6380"}))
}

func TestOpenRejectsBadTLS(t *testing.T) {
	_, err := Open(dr.GroupConfig{Name: "g", Kind: dr.KindRedis,
		A: dr.Instance{Addr: "a:1", TLS: &dr.TLSConfig{CAFile: "/nonexistent/ca.pem"}}, B: dr.Instance{Addr: "b:1"}})
	require.ErrorContains(t, err, "dr/redis: a: dr: TLS CA file")
}
