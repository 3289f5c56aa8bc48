import bespin
