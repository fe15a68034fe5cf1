// Package lint checks the project's source rules that the compiler and go
// vet do not: no package-level mutable state outside main packages and
// tests, and no function over 100 lines outside tests. It parses the
// module's sources (go/parser, no type checking); its tests walk the whole
// module and fail on a new breach, naming file and line.
package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Source is one parsed file of the module, tests aside.
type Source struct {
	Dir  string // slash-separated, relative to the module root ("overlay/guard")
	Path string // the file, relative to the module root
	File *ast.File
}

// Main reports whether s is in a main package (a command).
func (s Source) Main() bool { return s.File.Name.Name == "main" }

// Sources parses every .go file under root but tests (_test.go), skipping
// testdata, vendor, directories whose names start with "." or "_", and
// nested modules (their own go.mod). Positions name files relative to
// root.
func Sources(fset *token.FileSet, root string) ([]Source, error) {
	var out []Source
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(path, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Named by rel: positions read "overlay/guard/follow.go:118".
		f, err := parser.ParseFile(fset, rel, b, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		out = append(out, Source{Dir: pathDir(rel), Path: rel, File: f})
		return nil
	})
	return out, err
}

// PackageDirs lists, slash-separated and relative to root, the
// directories under root holding a package (any non-test .go file), with
// the skips of Sources.
func PackageDirs(root string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path != root && skipDir(path, d.Name()):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); !seen[rel] {
			seen[rel] = true
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}

func skipDir(path, name string) bool {
	if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "go.mod"))
	return err == nil
}

func pathDir(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return "."
}

// Var is a package-level variable.
type Var struct {
	Pos  token.Position
	Dir  string // its package's directory, as Source.Dir
	Name string
}

// Key is how allowlists name v: its package's directory and its name
// ("overlay/guard.Reasons").
func (v Var) Key() string { return v.Dir + "." + v.Name }

// PackageVars lists the package-level variables of srcs outside main
// packages, except the two kinds that are not state: interface assertions (`var _ I = (*T)(nil)`,
// a blank name with a type) and sentinel errors (a name starting with Err
// or err whose value is errors.New(...) or fmt.Errorf(...)).
func PackageVars(fset *token.FileSet, srcs []Source) []Var {
	var out []Var
	for _, s := range srcs {
		if s.Main() {
			continue
		}
		for _, d := range s.File.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if notState(vs, i) {
						continue
					}
					out = append(out, Var{Pos: fset.Position(n.Pos()), Dir: s.Dir, Name: n.Name})
				}
			}
		}
	}
	return out
}

// notState reports whether the i-th name of vs is an interface assertion
// or a sentinel error.
func notState(vs *ast.ValueSpec, i int) bool {
	name := vs.Names[i].Name
	if name == "_" {
		return vs.Type != nil
	}
	if !strings.HasPrefix(name, "Err") && !strings.HasPrefix(name, "err") || len(vs.Values) != len(vs.Names) {
		return false
	}
	call, ok := vs.Values[i].(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && (pkg.Name == "errors" && sel.Sel.Name == "New" || pkg.Name == "fmt" && sel.Sel.Name == "Errorf")
}

// Func is a function declaration and its length.
type Func struct {
	Pos   token.Position
	Name  string // "Name" or "Recv.Name"
	Lines int    // from the func keyword's line to the closing brace's, both counted
}

// LongFuncs lists the function declarations of srcs longer than max lines.
func LongFuncs(fset *token.FileSet, srcs []Source, max int) []Func {
	var out []Func
	for _, s := range srcs {
		for _, d := range s.File.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start, end := fset.Position(fd.Type.Func), fset.Position(fd.Body.Rbrace)
			if n := end.Line - start.Line + 1; n > max {
				out = append(out, Func{Pos: start, Name: funcName(fd), Lines: n})
			}
		}
	}
	return out
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + fd.Name.Name
		}
		return fd.Name.Name
	}
}
