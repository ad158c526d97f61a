package jdiffusion.pipeline;

/** The documented defaults of a generation, those that do not depend on the model family. */
final class Defaults {
    static final String SAMPLER = "euler";
    static final String SCHEDULER = "normal";
    static final int STEPS = 20;

    private Defaults() {
    }
}
