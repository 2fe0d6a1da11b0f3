// Package localstack runs real redis-server and clickhouse-server processes
// as children of the current process, with their data under a given
// directory and on free loopback ports. testenv uses it for tests and
// `stockcast demo` for the local stack.
//
// Children get Pdeathsig=SIGKILL (Linux), so a parent that is killed leaves
// no server behind.
package localstack
