module github.com/pdmstream/pdm/edge-agent

go 1.26.8

require github.com/pdmstream/pdm/pdmkit v0.0.0

require (
	github.com/eclipse/paho.mqtt.golang v1.5.1 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
)

replace github.com/pdmstream/pdm/pdmkit => ../pdmkit
