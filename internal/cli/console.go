package cli

import (
	"crypto/rand"
	"fmt"
	"io"

	"golang.org/x/crypto/bcrypt"

	"github.com/stockcast/stockcast/internal/stack"
)

// withDemoConsole makes the demo start the web console with three users,
// admin, planner and viewer, sharing one fresh random password, which it
// returns for printing.
func (f *stackFlags) withDemoConsole() (string, error) {
	password := rand.Text()[:12]
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash the console password: %w", err)
	}
	f.consoleUsers = nil
	for _, role := range []string{"admin", "planner", "viewer"} {
		f.consoleUsers = append(f.consoleUsers, role+":"+role+":"+string(h))
	}
	return password, nil
}

// printConsole tells where the console is and how to log in.
func printConsole(w io.Writer, st *stack.Stack, password string) {
	if u := st.ConsoleURL(); u != "" {
		fmt.Fprintf(w, "\nconsole: %s  (log in as admin, planner or viewer; password %s)\n", u, password)
	}
}
