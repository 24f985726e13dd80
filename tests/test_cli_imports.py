"""No import circle between the command modules (issue 26: `cli.py` <-> `cli_pacs.py`, now the
package `cli/`): each module registers its own subcommands and imports only the leaf
`cli/common.py`, never the package's entry point (`cli/__init__.py`) that builds the parser.
Checked on the import graph import-linter uses (grimp), directly and through any chain of
modules; pyproject.toml's acyclic_siblings contract forbids circles among the modules."""

import grimp

COMMAND_MODULES = ("clinical", "common", "data", "evaluate", "model", "pacs", "predict",
                   "sites")


def test_command_modules_never_import_the_entry_point_and_common_is_a_leaf():
    graph = grimp.build_graph("tfesi_desktop")
    package = "tfesi_desktop.cli"
    found = graph.find_children(package)
    assert found >= {f"{package}.{m}" for m in COMMAND_MODULES}, found
    for module in found - {f"{package}.__main__"}:  # python -m: it runs the entry point
        assert graph.find_shortest_chain(importer=module, imported=package) is None, module
        if module != f"{package}.common":
            assert graph.find_shortest_chain(importer=f"{package}.common",
                                             imported=module) is None, module
    # and the parser really is built from them: the entry point reaches every one
    for m in COMMAND_MODULES:
        assert graph.find_shortest_chain(importer=package, imported=f"{package}.{m}")
