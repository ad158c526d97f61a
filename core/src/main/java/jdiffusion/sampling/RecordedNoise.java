package jdiffusion.sampling;

import java.util.List;

/** Replays recorded draws (tests inject ComfyUI's {@code noise_draws}): call k returns draw k. */
public final class RecordedNoise implements NoiseSource {
    private final List<float[]> draws;
    private int next;

    public RecordedNoise(List<float[]> draws) {
        this.draws = List.copyOf(draws);
    }

    @Override
    public float[] next(double sigma, double sigmaNext) {
        if (next >= draws.size()) {
            throw new IllegalStateException("noise draw " + next + " requested at sigma " + sigma + " -> " + sigmaNext
                    + " but only " + draws.size() + " draws were recorded");
        }
        return draws.get(next++).clone();
    }

    /** How many draws were consumed so far. */
    public int used() {
        return next;
    }
}
