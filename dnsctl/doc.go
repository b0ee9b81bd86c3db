// Package dnsctl is the internal DNS of a two-center platform: an authoritative
// server for the platform's zones whose answers follow the active center, so
// applications in both centers are configured with names, never addresses, and
// a switchover is a Switch call rather than a configuration change everywhere.
//
// It serves UDP and TCP (miekg/dns): SOA, NS, A, AAAA, CNAME, SRV, TXT, MX and
// PTR records; NXDOMAIN and NODATA with the SOA in the authority section; CNAME
// chains across our zones; EDNS0; truncation with TCP fallback; minimal answers
// to ANY (RFC 8482). Names outside our zones go to upstream resolvers, with a
// cache and failover. Zones transfer to secondaries by AXFR and IXFR, signed with
// TSIG, and a NOTIFY follows every change.
//
// # Record sets and centers
//
// A RecordSet holds either Data, one answer for everyone, or Centers, a target
// list per center, with Active naming the center served. Switch moves one record
// set, a zone or everything to another center in one atomic step. Active may also
// be AllCenters: each client then gets its own center's targets, by the client
// networks listed in Config.Views (split horizon), and clients outside every view
// get Config.Center's. A HealthCheck on a record set with centers opts in to
// failover: targets failing the check are left out of answers, and when all of
// the chosen center's fail, clients get the next center's.
//
// # Configuration
//
// Config is a JSON-tagged struct; zero fields take the defaults stated on each
// field. Config.Validate, Zone.Validate and Scope.Validate report every problem
// at once as a *ValidationError whose Errors carry JSON paths such as
// "zones[0].record_sets[2].data[0]".
//
// # Lifecycle
//
// New validates and builds a server without side effects. Start binds the
// listeners and starts serving, health checks and (for a secondary) transfers;
// Close stops them and waits for in-flight work. Servers share no state, so a
// process or a test may run several, e.g. a primary and its secondary.
//
// Zones change through ApplyZone (whole zone), ApplyChanges (an atomic batch of
// add, update and delete), ImportZoneFile, DeleteZone and Switch. Each change
// that alters answers bumps the zone's SOA serial. Every change builds a new
// immutable snapshot of all zones and publishes it with one atomic pointer
// store; queries read snapshots without locks, so no query sees half a change.
//
// A server whose Config.Primary is set holds read-only copies of the primary's
// zones: it transfers them at start, on every NOTIFY and every refresh, and keeps
// answering from the last copy when the primary is gone. A standard zone transfer
// cannot carry centers, so a copy holds what a client outside every view gets
// from the primary: the active center's targets.
//
// # Errors
//
// Errors wrap the sentinels declared in errors.go (ErrZoneNotFound,
// ErrRecordSetNotFound, ErrCenterNotFound, ErrReadOnlyZone, ...) and name the
// zone or record set; test them with errors.Is. Invalid input wraps ErrInvalid
// and is a *ValidationError.
//
// # Observability
//
// With Config.Registerer set, the server exports dnsctl_queries_total{type,rcode},
// dnsctl_query_duration_seconds{source}, dnsctl_cache_hits_total,
// dnsctl_cache_misses_total, dnsctl_upstream_requests_total{upstream,result} and
// dnsctl_transfers_total{direction,result}. Config.QueryLog logs each query to
// Config.Logger. Status reports zones, serials, failing targets and counters.
//
// # Testing code that uses dnsctl
//
// Start a real server on a loopback address with UDPAddr "127.0.0.1:0" and ask it
// with any DNS client (see the example); it needs nothing outside the process.
// Forwarding tests need an upstream you start yourself on loopback.
package dnsctl
