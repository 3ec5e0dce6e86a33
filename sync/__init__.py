"""The network edge: the MQTT sync agent and the owner's and hub's tools."""
