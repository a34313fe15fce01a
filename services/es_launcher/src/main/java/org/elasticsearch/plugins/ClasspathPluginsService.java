package org.elasticsearch.plugins;

import org.elasticsearch.Build;
import org.elasticsearch.action.admin.cluster.node.info.PluginsAndModules;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.spi.SPIClassIterator;

import java.lang.reflect.Constructor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A {@link PluginsService} whose plugins are classes already on the JVM classpath (no plugin/module directories,
 * no per-plugin class loaders). Lives in this package only to reach the package-private plugin-loading helpers.
 *
 * <p>Used by {@code logpipe.esnode.EmbeddedNode} to load the Netty4 network plugin from its Maven jar.
 */
public class ClasspathPluginsService extends PluginsService {

    private final List<LoadedPlugin> classpathPlugins;

    public ClasspathPluginsService(Settings settings, Environment environment, Collection<Class<? extends Plugin>> pluginClasses) {
        super(settings, environment.configDir(), new PluginsLoader(Collections.emptySet(), Collections.emptySet(), Collections.emptyMap()));
        List<LoadedPlugin> loaded = new ArrayList<>();
        for (Class<? extends Plugin> pluginClass : pluginClasses) {
            Plugin plugin = loadPlugin(pluginClass, settings, environment.configDir());
            PluginDescriptor descriptor = new PluginDescriptor(
                pluginClass.getName(),
                "classpath plugin",
                "NA",
                Build.current().version(),
                Integer.toString(Runtime.version().feature()),
                pluginClass.getName(),
                null,
                Collections.emptyList(),
                false,
                false,
                false,
                false
            );
            loaded.add(new LoadedPlugin(descriptor, plugin, pluginClass.getClassLoader()));
        }
        loadExtensions(loaded);
        this.classpathPlugins = List.copyOf(loaded);
    }

    @Override
    protected final List<LoadedPlugin> plugins() {
        return classpathPlugins;
    }

    @Override
    public PluginsAndModules info() {
        return new PluginsAndModules(classpathPlugins.stream().map(LoadedPlugin::descriptor).map(PluginRuntimeInfo::new).toList(), List.of());
    }

    /**
     * SPI extensions of the classpath plugins (META-INF/services entries visible to their class loader),
     * each implementation class instantiated once.
     */
    @Override
    public <T> List<? extends T> loadServiceProviders(Class<T> service) {
        Map<Class<?>, T> found = new LinkedHashMap<>();
        for (LoadedPlugin lp : plugins()) {
            Plugin plugin = lp.instance();
            SPIClassIterator<T> it = SPIClassIterator.get(service, plugin.getClass().getClassLoader());
            while (it.hasNext()) {
                Class<? extends T> impl = it.next();
                if (found.containsKey(impl) || acceptsOtherPlugin(impl, plugin)) {
                    continue;
                }
                found.put(impl, createExtension(impl, service, plugin));
            }
        }
        return List.copyOf(found.values());
    }

    /** An extension whose single-arg constructor wants a different plugin type belongs to that other plugin. */
    private static boolean acceptsOtherPlugin(Class<?> impl, Plugin plugin) {
        for (Constructor<?> c : impl.getConstructors()) {
            if (c.getParameterCount() == 1 && c.getParameterTypes()[0] != plugin.getClass()) {
                return true;
            }
        }
        return false;
    }
}
