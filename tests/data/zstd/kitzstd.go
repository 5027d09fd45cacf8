// kitzstd: kit's zstd calls (klauspost/compress/zstd with default options), stdin to stdout.
//   kitzstd encode   zstd.NewWriter(w)   (kit's pack: tar.go, raw.go)
//   kitzstd decode   zstd.NewReader(r)   (default decoder options)
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

func main() {
	switch os.Args[1] {
	case "encode":
		w, err := zstd.NewWriter(os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if _, err := io.Copy(w, os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := w.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "decode":
		r, err := zstd.NewReader(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer r.Close()
		if _, err := io.Copy(os.Stdout, r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
