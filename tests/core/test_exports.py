import pkgutil

import voicecall


def test_public_names_match_all() -> None:
    # submodules appear as attributes once anything imported them: they are not public names
    submodules = {m.name for m in pkgutil.iter_modules(voicecall.__path__)}
    public = {n for n in dir(voicecall) if not n.startswith("_")} - submodules
    assert public | {"__version__"} == set(voicecall.__all__)
    for name in voicecall.__all__:
        assert getattr(voicecall, name) is not None


def test_every_submodule_is_known_to_the_check() -> None:
    # the check above must not hide a public name that shadows a submodule
    assert not set(voicecall.__all__) & {m.name for m in pkgutil.iter_modules(voicecall.__path__)}
