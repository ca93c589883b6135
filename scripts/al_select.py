"""Snakemake script: score one generation's exploration pool with the committee, pick the
frames to label (active and random), write them as the generation's structure set."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.active import choose_frames, picked_structures, score_pool
from dft2mlip.io import write_json
from dft2mlip.structures import write_structure_set

p = snakemake.params
gen = int(snakemake.wildcards.gen)
trajectories = dict(zip(p.paths, snakemake.input.trajectories, strict=True))
table, pool = score_pool(
    trajectories, snakemake.input.committee, p.score["weights"], p.score["combine"]
)
chosen, record = choose_frames(table, gen, p.k, p.min_gap, p.seed, p.baseline, p.selection)
table.to_csv(snakemake.output.scores, index=False)
write_json(record, snakemake.output.selection)
write_structure_set(snakemake.output.structures, picked_structures(pool, chosen, table))
if record["gap_relaxed"]:
    log.warning("g%d: fewer than %d frames %d apart; the best remaining frames filled in",
                gen, p.k, p.min_gap)  # fmt: skip
for frame in record["frames"]:
    log.info("g%d %s: %s frame %d, strain %.4f, score %.3g", gen, frame["structure_id"],
             frame["path"], frame["frame"], frame["md_strain"], frame["score"])  # fmt: skip
