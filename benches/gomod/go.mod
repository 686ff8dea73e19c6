module example.com/mdconv

go 1.19

require (
	github.com/spf13/cobra v1.8.0
	github.com/yuin/goldmark v1.5.6
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.5 // indirect
)
