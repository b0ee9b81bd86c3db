// Package mwtest runs real middleware for integration tests: Redis, a
// Kafka-protocol broker and SSH nodes in Docker containers, placed in two
// data centers whose link a test can cut.
//
// # Running the suites
//
// Integration test files carry the build tag integration, so
//
//	go test -race ./...                      # unit tests only; no Docker needed
//	scripts/images                           # build the local images (idempotent, ~1 s when built)
//	go test -tags integration -race ./...    # unit and integration tests
//
// scripts/images builds three images from what a machine without a container
// registry can install: shuanghuo/redis:7-debian, Debian's Redis server on an
// empty root; shuanghuo/kfake:latest, franz-go's kfake; and
// shuanghuo/sshd:debian, Debian's OpenSSH server and busybox on an empty
// root. kfake is an in-memory Kafka-protocol broker, not Apache Kafka: a
// report of results obtained with it must say so. A test log names the
// images a rig runs.
//
// Images are chosen per Rig, first match wins: Config.RedisImage and
// Config.KafkaImage; the environment variables SHUANGHUO_REDIS_IMAGE and
// SHUANGHUO_KAFKA_IMAGE (scripts/images prints export lines for them); the
// local shuanghuo images if they exist; the official redis:7 and
// apache/kafka:3.9.0, which Docker pulls on first use. The SSH node image
// (Config.SSHDImage, SHUANGHUO_SSHD_IMAGE) has no official fallback: without
// scripts/images, StartSSHD fails and says so.
//
// Where no Docker daemon answers, Require, NewTestRig and Main skip the tests,
// unless the environment variable CI is true: then they fail, since CI is
// meant to run the suites.
//
// # A rig
//
// A Rig is three Docker networks: one per center (CenterA, CenterB) and a
// link between them. Each service joins its center's network under its Name
// and the link under "<center>-<name>":
//
//	rig := mwtest.NewTestRig(t, mwtest.Config{})
//	a, err := rig.StartRedis(ctx, mwtest.CenterA, mwtest.RedisOptions{})
//	b, err := rig.StartRedis(ctx, mwtest.CenterB, mwtest.RedisOptions{})
//	// a.HostAddr: 127.0.0.1:port, for the test process
//	// a.LinkAddr: center-a-redis1:6379, for containers in center B
//	host, port, _ := net.SplitHostPort(a.LinkAddr)
//	redis.NewClient(&redis.Options{Addr: b.HostAddr}).ReplicaOf(ctx, host, port)
//
// CutLink disconnects every service from the link and RestoreLink reconnects
// them; the host ports keep working throughout. A Redis replica sees
// master_link_status:down about 5 s after a cut (the default repl-timeout) and
// up within a second or two of the restore. Service.Stop kills a container,
// Service.Start brings it back on the same host port, and Service.Pause and
// Service.Unpause freeze and thaw it.
//
// A Kafka-protocol broker advertises its host address, so only clients in
// the test process can use it, and CutLink does not disturb them; see
// StartKafka.
//
// An SSH node (StartSSHD) lets root in with the keys it is given (NewSSHKey
// makes them) and offers a busybox shell. The test process reaches it, and
// whatever listens in it, at the container's address on its center's
// network (Service.IP), through the Linux bridge, without publishing ports:
//
//	hostKey, _ := mwtest.NewSSHKey()
//	client, _ := mwtest.NewSSHKey()
//	node, err := rig.StartSSHD(ctx, mwtest.CenterA, mwtest.SSHDOptions{HostKey: hostKey.PEM, AuthorizedKeys: client.AuthorizedKey})
//	ip, _ := node.IP(ctx)
//	// ssh root@ip with client.PEM; known_hosts: knownhosts.Line([]string{ip.String()}, hostKey.Signer.PublicKey())
//
// # Lifecycle and sharing
//
// NewTestRig gives one test its own rig and removes it when the test ends.
// To share one rig among a package's tests, call Main from TestMain and start
// the shared services in its setup function; each test then calls Require
// before it uses them. Tests that share services must not change them in
// ways other tests notice, or must put them back.
//
// A Rig removes its containers and networks in Close, and nothing else does:
// testcontainers' reaper is switched off (TESTCONTAINERS_RYUK_DISABLED=true,
// unless set otherwise), because its image cannot be pulled here. A test
// binary killed before its cleanup leaves them behind; every container and
// network a rig creates has the label shuanghuo.mwtest.rig, so
//
//	docker rm -f $(docker ps -aq --filter label=shuanghuo.mwtest.rig)
//	docker network rm $(docker network ls -q --filter label=shuanghuo.mwtest.rig)
//
// removes them.
//
// # Errors
//
// Errors start with "mwtest:", name the service and its container, and wrap
// their cause. When a service does not answer in time, or its container
// exits, the error carries the container's last log lines; NewTestRig logs
// every container's last lines when its test fails.
package mwtest
