package jdiffusion.lora;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.ModelFormatException;

/**
 * Several LoRAs applied in order over one model (each at its own UNet and text-encoder strength). The files stay
 * open until {@link #close}; switching LoRAs = closing this stack and loading another over the same base weights.
 */
public final class LoraStack implements AutoCloseable {
    private final ModelComponents base;
    private final ModelComponents weights;
    private final List<LoraFile> files;
    private final List<LoraReport> reports;

    private LoraStack(ModelComponents base, ModelComponents weights, List<LoraFile> files, List<LoraReport> reports) {
        this.base = base;
        this.weights = weights;
        this.files = files;
        this.reports = reports;
    }

    /** Opens, matches and stacks the LoRAs; on any error the files opened so far are closed again. */
    public static LoraStack load(ModelComponents base, List<LoraSpec> specs) throws ModelFormatException {
        List<LoraFile> files = new ArrayList<>();
        List<LoraReport> reports = new ArrayList<>();
        ModelComponents current = base;
        try {
            for (LoraSpec spec : specs) {
                LoraFile f = LoraFile.open(spec.file());
                files.add(f);
                LoraMatch match = LoraMatch.of(f, base);
                reports.add(match.report());
                current = match.applyTo(current, spec.strength(), spec.clipStrength());
            }
        } catch (ModelFormatException | RuntimeException e) {
            files.forEach(LoraFile::close);
            throw e;
        }
        return new LoraStack(base, current, List.copyOf(files), List.copyOf(reports));
    }

    /** The unpatched weights. */
    public ModelComponents base() {
        return base;
    }

    /** The weights with every LoRA applied. */
    public ModelComponents weights() {
        return weights;
    }

    public List<LoraReport> reports() {
        return reports;
    }

    /** One warning line per LoRA that left keys unused. */
    public List<String> warnings() {
        return reports.stream().flatMap(r -> r.warning().stream()).toList();
    }

    @Override
    public void close() {
        files.forEach(LoraFile::close);
    }
}
