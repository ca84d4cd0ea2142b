"""The gallery's order: the examples read as a story, not alphabetically."""

ORDER = ("plot_drop_in.py", "plot_timings.py", "plot_locking.py", "plot_cloud_path.py",
         "plot_pipeline_dataset.py", "plot_model_selection.py", "plot_search_dataset.py",
         "plot_port_pca.py")


class ExampleOrder:
    """sphinx-gallery's ``within_subsection_order``: a sort key per file name."""

    def __init__(self, src_dir: str):
        self.src_dir = src_dir

    def __call__(self, filename: str) -> tuple[int, str]:
        return (ORDER.index(filename) if filename in ORDER else len(ORDER), filename)

    def __repr__(self) -> str:  # sphinx-gallery compares configs by repr
        return "<ExampleOrder>"
