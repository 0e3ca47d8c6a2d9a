module github.com/portcullis-mcp/portcullis

go 1.26.8
