package jdiffusion.model;

/**
 * Activation-sized arrays a model's forward pass reuses for short-lived intermediates (the group norm in front of a
 * res block's first convolution), kept by exact length: a convolution takes an input of exactly its size. The VAE
 * decoder at 512x512 otherwise allocates a new 134-268 MB array for every such intermediate; with this it allocates
 * one per size. Holds the last {@link #KEPT} sizes; one per forward pass, used by one thread, dropped afterwards.
 */
final class ActivationScratch {
    static final int KEPT = 2;

    private final float[][] kept = new float[KEPT][];
    private int next;
    private long allocated;

    /** An array of exactly length values (contents undefined), the kept one of that length when there is one. */
    float[] take(int length) {
        for (float[] a : kept) {
            if (a != null && a.length == length) {
                return a;
            }
        }
        float[] a = new float[length];
        allocated++;
        kept[next] = a;
        next = (next + 1) % KEPT;
        return a;
    }

    /** How many arrays {@link #take} had to allocate (for tests). */
    long allocated() {
        return allocated;
    }
}
