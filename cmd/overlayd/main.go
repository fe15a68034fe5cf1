// Command overlayd sets up and runs a dynamic VXLAN overlay on a Linux node:
// it builds the overlay namespace, bridge and vxlan device, attaches
// containers, and answers the kernel's L2/L3 miss notifications from a
// shared registry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/stores"
)

// command is one overlayd subcommand. Each lives in its own file and adds
// itself to commands in an init function.
type command struct {
	name    string
	summary string // one line for `overlayd --help`
	// run parses args (the words after the subcommand name) with fs, which
	// already carries the global flags, and does the work.
	run func(ctx context.Context, env *env, fs *flag.FlagSet, args []string) error
	// synopsis, if set, is the command's usage line for `overlayd --help`
	// (flags in brackets); summary is shown instead when empty.
	synopsis string
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// env is what every subcommand gets: the global settings and the streams.
type env struct {
	global globalFlags
	stdout io.Writer
	stderr io.Writer
}

// globalFlags are accepted by every subcommand, each with an OVERLAYD_*
// environment variable as its default.
type globalFlags struct {
	netnsDir string // where named network namespaces live
	stateDir string // what create remembers about this node
	store    string // registry URL
	nodeName string // this node's name in a store that names nodes (kube)
	logLevel string
	logJSON  bool
	// blockBits is attach's --block-bits (0 elsewhere: the default).
	blockBits int
}

func (g *globalFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&g.netnsDir, "netns-dir", envOr("OVERLAYD_NETNS_DIR", "/var/run/netns"),
		"directory of named network namespaces (env OVERLAYD_NETNS_DIR)")
	fs.StringVar(&g.stateDir, "state-dir", envOr("OVERLAYD_STATE_DIR", "/var/lib/overlayd"),
		"directory where create records this node's overlay (env OVERLAYD_STATE_DIR)")
	fs.StringVar(&g.store, "store", envOr("OVERLAYD_STORE", "dir:/var/lib/overlayd/store"),
		"registry URL: dir:PATH, etcd://HOST:PORT[,HOST:PORT]/PREFIX[?ttl=10s&ca=...], or kube:KUBECONFIG (kube: in a pod: the Kubernetes API, run's; the state directory's record, the other commands') (env OVERLAYD_STORE)")
	fs.StringVar(&g.nodeName, "node-name", envOr("NODE_NAME", ""),
		"this node's name in a kube: store, its Node object (env NODE_NAME; default: the host name)")
	// The default shown by --help comes from the environment: no password.
	fs.Lookup("store").DefValue = registry.RedactURL(fs.Lookup("store").DefValue)
	fs.StringVar(&g.logLevel, "log-level", envOr("OVERLAYD_LOG_LEVEL", "info"),
		"log level: debug, info, warn, error (env OVERLAYD_LOG_LEVEL)")
	fs.BoolVar(&g.logJSON, "log-json", os.Getenv("OVERLAYD_LOG_JSON") == "1",
		"log as JSON lines instead of text (env OVERLAYD_LOG_JSON=1)")
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// errUsage marks an error in how overlayd was called (exit status 2).
var errUsage = errors.New("usage error")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain runs overlayd with args and returns the exit status. Global flags
// may come before the command name as well as after it (`overlayd --store
// dir:/x status` is `overlayd status --store dir:/x`); after it, they win.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	lead, args, err := leadingGlobals(args)
	if err != nil {
		fmt.Fprintf(stderr, "overlayd: %v\n\n", err)
		usage(stderr)
		return 2
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "overlayd: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	e := &env{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("overlayd "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	e.global.bind(fs)
	for _, f := range lead {
		fs.Set(f.name, f.value) // parsed once already: cannot fail
	}
	err = cmd.run(ctx, e, fs, args[1:])
	if inspectFlags != nil {
		inspectFlags(cmd.name, fs)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "overlayd %s: %v\n", cmd.name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "overlayd %s: %v\n", cmd.name, err)
		return 1
	}
}

// flagValue is a global flag given before the command name.
type flagValue struct{ name, value string }

// leadingGlobals parses the global flags before the command name and
// returns them with the rest of args (the command name first). "-h" and
// "--help" stay in the rest. An unknown flag there is an error naming it.
func leadingGlobals(args []string) ([]flagValue, []string, error) {
	fs := flag.NewFlagSet("overlayd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	new(globalFlags).bind(fs)
	var i int
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" {
		name := strings.TrimLeft(args[i], "-")
		name, _, _ = strings.Cut(name, "=")
		if name == "h" || name == "help" || args[i] == "--" {
			break
		}
		if fs.Lookup(name) == nil {
			return nil, args, fmt.Errorf("unknown global flag %s (a command's own flags go after its name)", args[i])
		}
		i++
		if _, isBool := fs.Lookup(name).Value.(interface{ IsBoolFlag() bool }); !isBool && !strings.Contains(args[i-1], "=") {
			i++ // the flag's value
		}
	}
	if i > len(args) {
		return nil, args, fmt.Errorf("flag %s needs a value", args[len(args)-1])
	}
	if err := fs.Parse(args[:i]); err != nil {
		return nil, args, err
	}
	var lead []flagValue
	fs.Visit(func(f *flag.Flag) { lead = append(lead, flagValue{f.Name, f.Value.String()}) })
	return lead, args[i:], nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "overlayd: dynamic VXLAN overlay networking over rtnetlink\n\nUsage: overlayd COMMAND [flags]\n       overlayd [global flags] COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
		if syn := commands[n].synopsis; syn != "" {
			fmt.Fprintf(w, "  %-8s   overlayd %s\n", "", syn)
		}
	}
	fmt.Fprintf(w, "\nGlobal flags, accepted by every command, before or after its name:\n")
	fs := flag.NewFlagSet("overlayd", flag.ContinueOnError)
	fs.SetOutput(w)
	new(globalFlags).bind(fs)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nRun 'overlayd COMMAND --help' for a command's own flags.\n")
}

// inspectFlags, when set (by tests), sees each command's flag set after the
// command ran, so a test can check that --help describes every flag.
var inspectFlags func(cmd string, fs *flag.FlagSet)

// parseInterspersed parses args with fs, allowing flags before and after the
// positional arguments (`attach NAME --ip X` as well as `attach --ip X
// NAME`), and returns the positional arguments. Everything after "--" is
// positional. Errors other than flag.ErrHelp are usage errors.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// setUsage makes fs print a usage line, a description and every flag (the
// command's own and the global ones) for --help.
func setUsage(fs *flag.FlagSet, synopsis, description string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: overlayd %s\n\n%s\n\nFlags (global ones included):\n", synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
}

// logger builds the logger the global flags ask for, writing to w.
func (g *globalFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.logJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// node builds the overlay.Node the global flags describe, logging to the
// command's standard error. With withRegistry it also opens the --store
// registry, for the overlay the state directory records (attach, detach
// and reset need it). done releases the registry.
func (e *env) node(ctx context.Context, withRegistry bool) (n *overlay.Node, done func(), err error) {
	if !withRegistry {
		return e.openNode(ctx, nil)
	}
	return e.openNode(ctx, &registry.Options{})
}

// openNode is node with the --store registry opened with o (nil: no
// registry): the shipped schemes, no lease (the records persist with no
// daemon; the node's daemon moves them onto its lease), o.VNI the state
// directory's overlay unless set (overlay.StoreOptions).
func (e *env) openNode(ctx context.Context, o *registry.Options) (n *overlay.Node, done func(), err error) {
	log, err := e.global.logger(e.stderr)
	if err != nil {
		return nil, nil, err
	}
	if e.global.netnsDir == "" {
		return nil, nil, fmt.Errorf("%w: --netns-dir is empty", errUsage)
	}
	if e.global.stateDir == "" {
		return nil, nil, fmt.Errorf("%w: --state-dir is empty", errUsage)
	}
	opts := overlay.NodeOptions{NetNSDir: e.global.netnsDir, StateDir: e.global.stateDir, Logger: log, BlockBits: e.global.blockBits}
	done = func() {}
	if o != nil {
		so := overlay.StoreOptions(e.global.stateDir, *o)
		so.Schemes, so.Logger = stores.Schemes(), log
		reg, err := registry.Open(ctx, e.global.store, so)
		if err != nil {
			return nil, nil, fmt.Errorf("--store: %w", err)
		}
		opts.Registry = reg
		done = func() { reg.Close() }
	}
	return overlay.NewNode(opts), done, nil
}
