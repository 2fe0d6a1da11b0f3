package stack

import (
	"strings"
)

// names are the services this stack runs, in start order: the console
// last, and only when it has users.
func (s *Stack) names() []string {
	if len(s.cfg.ConsoleUsers) == 0 {
		return Services()
	}
	return append(Services(), Console)
}

// consoleArgs is the console's command line: it serves HTTP on the
// service's first port and reads the other services' APIs, admin
// endpoints, ClickHouse and the DLQ topics.
func (s *Stack) consoleArgs(svc *service) []string {
	var admins []string
	for _, name := range Services() {
		admins = append(admins, name+"="+s.service(name).adminAddr)
	}
	return []string{
		"-http.addr=" + svc.grpcAddr,
		"-admin.addr=" + svc.adminAddr,
		"-kafka.brokers=" + strings.Join(s.brokers, ","),
		"-clickhouse.addr=" + s.ch.Addr(),
		"-clickhouse.database=" + Database,
		"-feature.addr=" + s.service(Feature).grpcAddr,
		"-forecast.addr=" + s.service(Forecast).grpcAddr,
		"-replenishment.addr=" + s.service(Replenishment).grpcAddr,
		"-console.admins=" + strings.Join(admins, ","),
		"-console.users=" + strings.Join(s.cfg.ConsoleUsers, ","),
	}
}

// ConsoleURL is the console's address ("" when it does not run).
func (s *Stack) ConsoleURL() string {
	if len(s.cfg.ConsoleUsers) == 0 {
		return ""
	}
	return "http://" + s.service(Console).grpcAddr
}
