package resolver

// testConfig is a Config with the seams a test replaces (the clock, a fake
// kernel in place of Conn, no inline miss); its fields are its parts'.
type testConfig struct {
	Config
	seams
}

// newTest is New with tc's seams.
func newTest(tc testConfig) (*Resolver, error) { return newResolver(tc.Config, tc.seams) }
