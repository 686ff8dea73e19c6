// A small real program on real modules (cobra, goldmark with its extensions, yaml.v3), vendored
// at bench set-up time (benches/prepare.sh) so that the build runs offline.
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"gopkg.in/yaml.v3"
)

func main() {
	cmd := &cobra.Command{
		Use:   "mdconv [file]",
		Short: "Markdown with a YAML front matter to HTML",
		RunE: func(c *cobra.Command, args []string) error {
			in := []byte("---\ntitle: Slipway\n---\n# Hello\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
			if len(args) == 1 {
				b, err := os.ReadFile(args[0])
				if err != nil {
					return err
				}
				in = b
			}
			meta := map[string]any{}
			body := in
			if parts := bytes.SplitN(in, []byte("---\n"), 3); len(parts) == 3 && len(parts[0]) == 0 {
				if err := yaml.Unmarshal(parts[1], &meta); err != nil {
					return err
				}
				body = parts[2]
			}
			md := goldmark.New(goldmark.WithExtensions(extension.GFM, extension.Footnote))
			var out bytes.Buffer
			if err := md.Convert(body, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "<title>%v</title>\n", meta["title"])
			_, err := io.Copy(c.OutOrStdout(), &out)
			return err
		},
	}
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
