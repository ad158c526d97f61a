package jdiffusion.cli;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import jdiffusion.sampling.DiffusersSchedule;
import jdiffusion.sampling.Samplers;
import jdiffusion.sampling.Schedulers;
import picocli.CommandLine.Command;

/**
 * {@code jdiffusion samplers}: the names {@code --sampler} and {@code --scheduler} accept (ComfyUI's names; the
 * {@code *_gpu} samplers are aliases of their CPU twins), one per line under a heading.
 */
@Command(name = "samplers", mixinStandardHelpOptions = true,
        description = "List the sampler and scheduler names accepted by --sampler and --scheduler.")
public final class SamplersCommand implements Callable<Integer> {

    @Override
    public Integer call() {
        System.out.println("samplers:");
        for (String name : Samplers.NAMES) {
            System.out.println("  " + name + (Samplers.isImplemented(name) ? "" : " (not implemented)"));
        }
        System.out.println("schedulers (ComfyUI):");
        Schedulers.NAMES.forEach(name -> System.out.println("  " + name));
        System.out.println("schedulers (diffusers timestep spacing):");
        List<String> spacings = Arrays.stream(DiffusersSchedule.Spacing.values())
                .map(DiffusersSchedule.Spacing::lowerName).toList();
        spacings.forEach(name -> System.out.println("  " + name));
        return 0;
    }
}
