// Package web holds the console's single-page app: the source (src/,
// built with `make console-assets`) and the built files in dist/, which are
// committed and embedded so the Go build needs no node.
package web

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Assets returns the built app: index.html and assets/.
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path: fs.Sub cannot fail here
	}
	return sub
}
