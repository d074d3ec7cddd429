import voicecall


def test_public_names_match_all() -> None:
    public = {n for n in dir(voicecall) if not n.startswith("_")} - {
        "agent",
        "calls",
        "config",
        "errors",
        "phone",
        "events",
        "providers",
        "twilio",
        "server",
        "logs",
        "audio",
        "speech",
        "voice",
        "cli",
        "emulator",
        "netaddr",
        "textrules",
    }
    assert public | {"__version__"} == set(voicecall.__all__)
    for name in voicecall.__all__:
        assert getattr(voicecall, name) is not None
