"""Transport factories: SmallWebRTC, WebSocket, local audio and Daily."""
