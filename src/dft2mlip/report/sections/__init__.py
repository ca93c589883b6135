"""One module per report section: its data gathered from the artifacts, its figure."""
