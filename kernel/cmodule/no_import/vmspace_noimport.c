// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Uses vmspace's exported C API without importing its symbol namespace;
 * must not build (see Kbuild here).
 */
#include <linux/module.h>
#include <linux/vmspace.h>

static int __init noimport_init(void)
{
	return vmspace_version() > 0 ? 0 : -EINVAL;
}
module_init(noimport_init);

MODULE_DESCRIPTION("vmspace's C API used without MODULE_IMPORT_NS: must not build");
MODULE_LICENSE("Dual MIT/GPL");
