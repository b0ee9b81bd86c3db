package mwtest

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/testcontainers/testcontainers-go"
)

// KafkaOptions configures one Kafka-protocol broker. The zero value is ready
// to use.
type KafkaOptions struct {
	// Name is the broker's name in its center, unique there: lower-case
	// letters, digits and inner dashes. Default: "kafka1", "kafka2", … in
	// the order the center's brokers start.
	Name string

	// Partitions is how many partitions a topic gets when it is created on
	// first use (num.partitions). Default: 1.
	Partitions int
}

// StartKafka starts a single-broker Kafka-protocol cluster in center and
// waits until it answers an ApiVersions request from the host
// (Config.StartTimeout at most). Topics are created on first use.
//
// The broker advertises 127.0.0.1 and its host port, listening on that same
// port number in its container, so that clients in the test process can
// follow the addresses it hands out. Clients in other containers cannot,
// which is why its Service has no CenterAddr or LinkAddr, and why CutLink
// does not disturb it: to lose a center's broker, Stop or Pause it.
//
// The default image, built by scripts/images, is franz-go's kfake: an
// in-memory Kafka-protocol broker, not Apache Kafka. Say so where results are
// reported.
func (r *Rig) StartKafka(ctx context.Context, center string, opts KafkaOptions) (*Service, error) {
	if opts.Partitions < 0 {
		return nil, fmt.Errorf("mwtest: start kafka in %s: KafkaOptions.Partitions is %d; want zero (for 1) or more", center, opts.Partitions)
	}
	partitions := max(opts.Partitions, 1)
	return r.start(ctx, serviceSpec{
		kind:   "kafka",
		center: center,
		name:   opts.Name,
		image:  r.cfg.KafkaImage,
		configure: func(req *testcontainers.ContainerRequest, hostPort int) int {
			req.Env = kafkaEnv(hostPort, partitions)
			return hostPort
		},
		probe: func(ctx context.Context, hostAddr string) error {
			conn, err := (&kafka.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", hostAddr)
			if err != nil {
				return err
			}
			defer conn.Close()
			if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
				return err
			}
			_, err = conn.ApiVersions()
			return err
		},
	})
}

// kafkaEnv configures a single-node KRaft cluster in the apache/kafka image's
// terms, listening and advertising on port. The kfake image reads the
// listener, advertised listener, partition and topic creation settings and
// ignores the rest.
func kafkaEnv(port, partitions int) map[string]string {
	p := strconv.Itoa(port)
	return map[string]string{
		"KAFKA_NODE_ID":                                  "1",
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_LISTENERS":                                "PLAINTEXT://:" + p + ",CONTROLLER://:9093",
		"KAFKA_ADVERTISED_LISTENERS":                     "PLAINTEXT://127.0.0.1:" + p,
		"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9093",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
		"KAFKA_NUM_PARTITIONS":                           strconv.Itoa(partitions),
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "true",
	}
}
