// Package cache is the platform's cache service (缓存服务) for Redis: what an
// instance holds and how it is doing, read without hurting production.
//
// # Instances
//
// A Config names one instance (standalone, a primary or a replica) and how
// to reach it:
//
//	{"addr": "10.1.0.21:6379", "username": "ops", "password": "…",
//	 "tls": {"ca": "-----BEGIN CERTIFICATE-----…"},
//	 "scan_rate": 2000}
//
// New validates it and connects lazily; Close closes the connections. The
// password and the TLS key are secrets: Config's String, GoString and
// LogValue leave them out, errors name the instance by its address, and no
// method returns them. Config's JSON holds them, so that a control plane can
// store a registration (sealed).
//
// # Overview
//
// Overview reads INFO: used, peak and RSS memory, fragmentation, maxmemory
// and its policy, connected and blocked clients, ops/s, keyspace hits and
// misses and their ratio, evicted and expired keys, keys per database, the
// role with the replicas (a primary) or the link to the primary (a replica),
// and RDB and AOF status. Fields it does not know are ignored.
//
// # Key browser
//
// Keys returns a page of keys (SCAN with MATCH, TYPE and COUNT) with each
// key's type and TTL; its Cursor continues the scan, 0 when it is complete.
// Value returns a page of one key's value, read by type so that a big value
// is never read whole: GETRANGE of a string, HSCAN, SSCAN and ZSCAN, LRANGE
// of a list, XRANGE of a stream. Each string of a page is cut at MaxBytes,
// and Value.Cut says which were and their whole size. Values are Go strings
// holding Redis's bytes, which need not be UTF-8. Unlink deletes a key with
// UNLINK and is refused on a replica (ErrReplica).
//
// # Slow log
//
// A SlowLog collector reads SLOWLOG GET (Collect once, Run periodically)
// and remembers the last entry's ID, so that each entry counts once. Redis
// numbers entries from 0 at its start, so a gap in the IDs is the number of
// entries that left the log (or were beyond MaxRead) before they were read:
// the read's Lost. A new run_id is a restart, and counting starts again.
// Entries are aggregated by Shape: the command (with its subcommand, "CONFIG
// GET") and its first key folded by FoldKey, which turns runs of digits, hex
// and UUID-like ids and long random tokens into "*" ("cart:1001" and
// "cart:1002" are "cart:*"). Arguments are not kept: they may hold personal
// data.
//
// # Big and hot keys
//
// BigKeys scans the key space with SCAN and MEMORY USAGE (SAMPLES) and
// returns the biggest keys, with their type and length, and the memory by
// key prefix (the first Depth parts split at Separator, folded). Sample
// measures a share of the keys and scales the prefixes' estimates. Given
// BigKeysOptions.Replica, it checks that the instance is a replica of this
// one (its role, and its replication ID, which a replica takes from its
// primary) and scans it instead, so that the primary does no work.
//
// HotKeys scans the same way with OBJECT FREQ. Redis keeps access
// frequencies only under an LFU maxmemory-policy (allkeys-lfu,
// volatile-lfu); under another, HotKeys returns ErrNoLFU naming the policy.
// Reading a key's type, TTL, size or frequency does not count as an access,
// so the key browser and BigKeys do not make keys hot.
//
// # Production safety
//
// Every scan (Keys, BigKeys, HotKeys) is rate-limited: the instance's
// ScanRate (keys per second, default 2000) is shared by all its scans, and a
// scan's own Rate may lower it for that scan. SCAN's COUNT is at most 1000,
// a full scan stops after MaxKeys (the report then says it is not Complete),
// and the only write, UNLINK, frees memory in the background and is refused
// on a replica. Commands are not retried: a retry doubles the load on an
// instance that is struggling.
//
// # Errors
//
// Config.Validate and the options return a *ValidationError listing every
// field error by JSON path (Fields()). Other errors wrap a sentinel of
// errors.go (ErrNotFound, ErrReplica, ErrNotReplica, ErrNoLFU) or the Redis
// client's error, and name the instance by its address.
//
// # Not yet here
//
// The reference server's /api/v1/cache endpoints, the per-center inventory
// of instances (sealed at rest, shared with the DR groups), the overview's
// history, LATENCY history, edits of values, and the big-key benchmark
// (bench/cache) come in later steps of issue 20.
//
// # Testing
//
//	go test -race ./cache/
//	eval "$(scripts/images)"
//	TESTCONTAINERS_RYUK_DISABLED=true go test -race -tags integration ./cache/
package cache
