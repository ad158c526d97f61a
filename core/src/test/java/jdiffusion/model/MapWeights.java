package jdiffusion.model;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import jdiffusion.io.Weights;

/** Test helper: Weights held in memory. */
final class MapWeights implements Weights {
    private final Map<String, float[]> values = new LinkedHashMap<>();
    private final Map<String, int[]> shapes = new LinkedHashMap<>();

    MapWeights put(String name, float[] v, int... shape) {
        values.put(name, v.clone());
        shapes.put(name, shape.clone());
        return this;
    }

    @Override
    public Set<String> names() {
        return values.keySet();
    }

    @Override
    public boolean has(String name) {
        return values.containsKey(name);
    }

    @Override
    public int[] shape(String name) {
        if (!has(name)) {
            throw new MissingTensorException("no tensor '" + name + "'");
        }
        return shapes.get(name).clone();
    }

    @Override
    public float[] get(String name) {
        if (!has(name)) {
            throw new MissingTensorException("no tensor '" + name + "'");
        }
        return values.get(name).clone();
    }
}
