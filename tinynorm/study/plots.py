"""The study's figures, drawn with matplotlib's Agg backend when matplotlib is installed."""

PLOT_HINT = "plots skipped: matplotlib is not installed (pip install 'tinynorm[plot]')"
SIZES = {"sync": (6.0, 3.2)}


def log2_batch_axis(ax, sizes):
    """A log2 x-axis labelled with the batch sizes themselves."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(sizes), [str(b) for b in sorted(sizes)])
    ax.minorticks_off()


def available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def save_plot(experiment, records, path):
    """Draw ``experiment.plot(records, fig)`` into the PNG ``path``; False without matplotlib."""
    if not available():
        return False
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=SIZES.get(experiment.NAME, (9.0, 3.4)), dpi=80)
    try:
        experiment.plot(records, fig)
        fig.suptitle(experiment.NAME, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
    finally:
        plt.close(fig)
    return True
