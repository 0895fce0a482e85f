# netsh session saved 2026-11-24 21:30
# run it again with: netsh run FILE

# %%
srv = listen("tcp:0", wire.echo_factory())

# %%
class Client(Protocol):
    def data_received(self, data):
        print("client got", data)

# %%
d = connect(f"tcp:127.0.0.1:{srv.port}", Client).add_callback(lambda p: p.transport.write(b"hello\n") or "sent"); d

# %%
# conns()

# %%
# explain(d)
