"""No import circle between the command modules (issue 26: `cli.py` <-> `cli_pacs.py`): what
they share lives in the leaf `cli_common.py`. Checked on the import graph import-linter uses
(grimp), directly and through any chain of modules."""

import grimp


def test_cli_pacs_and_cli_common_never_import_cli():
    graph = grimp.build_graph("tfesi_desktop")
    assert graph.find_shortest_chain(importer="tfesi_desktop.cli_pacs",
                                     imported="tfesi_desktop.cli") is None
    assert graph.find_shortest_chain(importer="tfesi_desktop.cli_common",
                                     imported="tfesi_desktop.cli") is None
    assert graph.find_shortest_chain(importer="tfesi_desktop.cli_common",
                                     imported="tfesi_desktop.cli_pacs") is None
    # and the circle is really gone: cli still reaches cli_pacs, not the other way round
    assert graph.find_shortest_chain(importer="tfesi_desktop.cli",
                                     imported="tfesi_desktop.cli_pacs") is not None
