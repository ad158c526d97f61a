package jdiffusion.io;

import java.util.Set;

/**
 * A view that forwards only the four calls every {@link Weights} must answer (names, has, shape, get): dtype,
 * row, slice and mapped keep their defaults, as in a decorator that knows nothing of files (a LoRA view). A view
 * that changes one call (a difference ControlNet's sums) or a test that adds one back subclasses it.
 */
public class BasicView implements Weights {
    protected final Weights inner;

    public BasicView(Weights inner) {
        this.inner = inner;
    }

    @Override
    public Set<String> names() {
        return inner.names();
    }

    @Override
    public boolean has(String name) {
        return inner.has(name);
    }

    @Override
    public int[] shape(String name) {
        return inner.shape(name);
    }

    @Override
    public float[] get(String name) {
        return inner.get(name);
    }
}
