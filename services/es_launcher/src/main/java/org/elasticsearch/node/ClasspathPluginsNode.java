package org.elasticsearch.node;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;

import java.util.Collection;
import java.util.List;
import java.util.Map;

/**
 * A real {@link Node} whose plugins are given as classes on the classpath instead of being read from
 * {@code modules/} and {@code plugins/} directories of a distribution. Every node service is the stock one;
 * only plugin discovery differs. Lives in this package to reach Node's package-private construction hooks.
 */
public class ClasspathPluginsNode extends Node {

    public ClasspathPluginsNode(Settings settings, Collection<Class<? extends Plugin>> pluginClasses) {
        this(InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "logpipe-esnode"), List.copyOf(pluginClasses));
    }

    private ClasspathPluginsNode(Environment environment, List<Class<? extends Plugin>> pluginClasses) {
        super(NodeConstruction.prepareConstruction(environment, null, new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment env, PluginsLoader pluginsLoader) {
                return new ClasspathPluginsService(env.settings(), env, pluginClasses);
            }
        }, true));
    }
}
